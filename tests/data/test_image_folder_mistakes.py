"""Class folders as users leave them (found by trying `edgekd ship` as a new user): a stray image beside the class
folders, an empty class folder, a notebook's or macOS's hidden folders, and more class folders than the model has."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekd.core.errors import DataError
from edgekd.data.config import DataConfig
from edgekd.data.datasets import load_dataset
from tests.faults.helpers import assert_one_line_error, invoke


def _class_folders(root, classes=("0", "1"), per_class: int = 8):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8), mode="L").save(root / name / f"{i}.png")
    return root


def _load(root, **extra):
    return load_dataset(DataConfig(source="imagefolder", path=str(root), color="gray", **extra), 0)


def test_a_stray_image_beside_class_folders_is_refused_naming_it(tmp_path):
    """Before: the whole folder was read as unlabeled, so the label-order and scaling checks were skipped and a
    forgotten --normalize shipped a PASS whose real top-1 was 0.4 where the model's is 1.0."""
    root = _class_folders(tmp_path / "images")
    Image.new("L", (8, 8)).save(root / "preview.png")
    with pytest.raises(DataError, match=r"holds images \(preview.png\) beside class sub-folders \(0, 1\).*--no-labels"):
        _load(root)
    assert _load(root, labels="none").labeled is False  # said on purpose: every image unlabeled


def test_an_empty_class_folder_is_named(tmp_path):
    """Before: "no image has label 1 ('1'), though labels run to 2: renumber the labels", npz wording."""
    root = _class_folders(tmp_path / "images", classes=("0", "2"))
    (root / "1").mkdir()
    with pytest.raises(DataError, match=r"class folder '1' holds no image \(.*at any depth\)"):
        _load(root)


def test_hidden_and_macos_folders_are_not_classes(tmp_path):
    root = _class_folders(tmp_path / "images")
    _class_folders(root / ".ipynb_checkpoints", classes=("x",))
    _class_folders(root, classes=("__MACOSX",))
    assert _load(root).classes == ["0", "1"]


def test_more_class_folders_than_the_model_has_classes_names_them(tmp_path):
    """Before: "the data has 11 classes ... check data.source", naming no folder."""
    from tests.device.conftest import tiny_classifier

    root = _class_folders(tmp_path / "images", classes=[str(i) for i in range(11)], per_class=4)
    tiny_classifier(tmp_path / "model.onnx")
    result = invoke("ship", tmp_path / "model.onnx", "--data", root, "--color", "gray", "--normalize", "none",
                    "--out", tmp_path / "run")
    assert_one_line_error(result, "has 10 classes but the data has 11 class folders (0, 1, 10, 2,", "--no-labels")


@pytest.mark.parametrize("pool, named", [(204, "e.g. train-64"), (30, "a copy of a built-in recipe with source: train and count: 30")])
def test_a_calibration_pool_too_small_names_a_recipe_that_fits(pool, named):
    """Before: "choose a recipe with at most 204 samples (e.g. train-256)", the recipe that was too big."""
    from edgekd.data import calibration

    recipe = calibration.CalibrationRecipe(name="train-256", count=256)
    with pytest.warns(UserWarning, match=rf"at most {pool} samples \({named}, in quantize.calibration"):
        calibration._warn_pool_too_small(recipe, pool)


def test_an_image_of_another_size_is_named_with_how_many_share_each_size(tmp_path):
    """Before: "images have different sizes [(8, 8), (9, 8)]", naming no file among hundreds."""
    root = _class_folders(tmp_path / "images", per_class=20)
    Image.new("L", (9, 8)).save(root / "1" / "stray.png")
    with pytest.raises(DataError, match=r"different sizes: 9x8 \(1 image\(s\), e.g. .*1/stray.png\), 8x8 \(40 image\(s\).*"
                                         r"resize or remove the odd ones.*edgekd.yaml"):
        _load(root)


def _brightest_channel_model(path):
    """x [N, 3, 8, 8] -> each channel's mean, x10, as logits: class c is 'channel c brightest' (B, G, R for a BGR model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["x"], ["means"], axes=[2, 3], keepdims=0),
             helper.make_node("Mul", ["means", "ten"], ["logits"])]
    graph = helper.make_graph(nodes, "brightest", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
                              [numpy_helper.from_array(np.array(10, np.float32), "ten")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_model_trained_on_bgr_fed_rgb_is_told_to_decode_bgr_not_to_rename_folders(tmp_path):
    """Before: the label-order check answered "rename the class folders", which were in the right order."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for label, name in enumerate(("0-blue", "1-green", "2-red")):
        (root / name).mkdir(parents=True)
        rgb_channel = 2 - label  # blue is RGB's channel 2
        for i in range(40):
            pixels = rng.integers(0, 90, (8, 8, 3)).astype(np.uint8)
            pixels[..., rgb_channel] = rng.integers(160, 256, (8, 8))
            Image.fromarray(pixels, mode="RGB").save(root / name / f"{i}.png")
    _brightest_channel_model(tmp_path / "bgr.onnx")
    result = invoke("ship", tmp_path / "bgr.onnx", "--data", root, "--normalize", "none", "--out", tmp_path / "run")
    assert_one_line_error(result, "with the images decoded as RGB", "with their channels reversed",
                          "set data.color: bgr (edgekd ship: --color bgr)")
    fixed = invoke("ship", tmp_path / "bgr.onnx", "--data", root, "--normalize", "none", "--color", "bgr",
                   "--out", tmp_path / "fixed")
    assert fixed.exit_code == 0, fixed.output[-2000:]


def test_channels_last_arrays_for_a_run_that_trains_are_one_line(tmp_path):
    """A trial: an (N, 8, 8, 3) npz in a run with teachers crashed (internal error: operands could not be broadcast)."""
    from sklearn.datasets import load_digits

    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.task import task_for

    digits = load_digits()
    x = np.repeat((digits.images[:300] * 255 / 16).astype(np.uint8)[..., None], 3, axis=3)
    np.savez(tmp_path / "nhwc.npz", x=x, y=digits.target[:300])
    config = validate_config({"data": {"source": "npz", "path": str(tmp_path / "nhwc.npz")}, "teachers": [{"arch": "mlp"}],
                              "student": {"arch": "mlp"}})
    with pytest.raises(DataError, match=r"channels-last images \(8, 8, 3\).*numpy.transpose\(x, \(0, 3, 1, 2\)\)"):
        task_for(config).load_dataset(config, tmp_path)


def test_a_jpeg_stored_sideways_with_an_exif_orientation_is_read_as_shown(tmp_path):
    """A trial: phone JPEGs stored rotated with orientation 6 were decoded as stored (sideways): teacher and student fell
    from 92/75% to 83/48% on a folder where half were so, without a word."""
    from PIL import Image

    from edgekd.data.images import Preprocess

    upright = np.zeros((24, 16, 3), np.uint8)  # (H, W): taller than wide, a bright top band to tell up from sideways
    upright[:6] = 255
    Image.fromarray(upright).save(tmp_path / "upright.png")
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # stored sideways: 16 rows, 24 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to show": what a phone writes for this sensor orientation
    stored.save(tmp_path / "tagged.jpg", exif=exif, quality=100)
    steps = Preprocess(color="rgb")
    shown, expected = steps.load(tmp_path / "tagged.jpg"), steps.load(tmp_path / "upright.png")
    assert shown.shape == expected.shape == (3, 24, 16)
    assert shown[:, :6].mean() > 0.9 and shown[:, 8:].mean() < 0.1  # the bright band on top, as shown


def test_a_class_too_small_to_reach_validation_or_test_is_named(tmp_path):
    """A trial: a class folder of 2 images beside 800 others ran with no word, though the random split most likely
    left it out of validation and test, where its accuracy is then never measured. Warned (session 14: so that the
    run log keeps it) and carried by the dataset for the report."""
    rng = np.random.default_rng(0)
    y = np.concatenate([np.repeat(np.arange(4), 100), [4, 4]])
    np.savez(tmp_path / "few.npz", x=rng.random((len(y), 1, 8, 8)).astype(np.float32), y=y)
    with pytest.warns(UserWarning) as caught:
        data = load_dataset(DataConfig(source="npz", path=str(tmp_path / "few.npz")), seed=0, base_dir=tmp_path)
    said = " ".join(str(w.message) for w in caught)
    assert "class '4' (2 samples)" in said and "its accuracy is not measured there" in said
    assert data.data_warnings and all(note in said for note in data.data_warnings)


def _one_score_model(path):
    """x [N,1,8,8] -> Flatten -> Gemm -> Sigmoid -> [N,1]: a binary classifier with one probability per sample."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("Gemm", ["flat", "W", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["p"])],
        "one-score", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(rng.normal(size=(64, 1)).astype(np.float32) / 64, "W"),
                     numpy_helper.from_array(np.zeros(1, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("labels", [[], ["--no-labels"]], ids=["class-folders", "no-labels"])
def test_a_model_with_one_score_per_sample_is_refused_not_judged_on_nothing(tmp_path, labels):
    """Trial defect (session 11): a (N, 1) sigmoid model shipped --no-labels gated PASS with top-1 100% and cosine 1.0
    while its int8 output one constant for every image (top-1 of one column is always 0; a one-value cosine is its
    sign); with class folders it was told to remove a folder."""
    root = _class_folders(tmp_path / "images", per_class=12)
    _one_score_model(tmp_path / "binary.onnx")
    result = invoke("ship", tmp_path / "binary.onnx", "--data", root, "--color", "gray", "--normalize", "none",
                    "--out", tmp_path / "run", *labels)
    assert_one_line_error(result, "the model's first output has one column", "top-1 is always class 0",
                          "torch.cat([-z, z], 1)")


def test_the_cosine_of_one_value_per_sample_is_taken_over_the_samples():
    from edgekd.core.metrics import tensor_fidelity

    reference = np.array([[0.9], [0.1], [0.8], [0.05]])
    constant = np.full_like(reference, 0.3)
    assert tensor_fidelity(constant, reference)["cosine"] < 0.8  # was 1.0: every one-value cosine is its sign
    assert tensor_fidelity(reference, reference)["cosine"] == pytest.approx(1.0)


def _quadrant_classifier(path):
    """x [N,1,8,8] -> logits [N,4]: class k lights quadrant k (a model that is right on _quadrant_images)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((64, 4), np.float32)
    for k in range(4):
        mask = np.zeros((8, 8), np.float32)
        mask[(k // 2) * 4:(k // 2) * 4 + 4, (k % 2) * 4:(k % 2) * 4 + 4] = 1
        weight[:, k] = mask.reshape(-1)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("Gemm", ["flat", "W", "b"], ["logits"])],
        "quadrants", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.zeros(4, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _quadrant_images(root, names, per_class):
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (8, 8)).astype(np.uint8)
            image[(k // 2) * 4:(k // 2) * 4 + 4, (k % 2) * 4:(k % 2) * 4 + 4] += 150
            Image.fromarray(image, mode="L").save(root / name / f"{i}.png")
    return root


def test_two_swapped_class_folders_are_caught_on_a_small_folder(tmp_path):
    """Trial defect (session 11): two class folders swapped in a 200-image folder shipped PASS at 67.5% (the model's
    93%): the order check looked at 24 validation images only, where p < 0.001 cannot be reached for one swap. The
    training images, which only calibrate a model shipped as given, are judged too."""
    _quadrant_classifier(tmp_path / "model.onnx")
    root = _quadrant_images(tmp_path / "images", ["a", "c", "b", "d"], per_class=30)  # b and c swapped
    result = invoke("ship", tmp_path / "model.onnx", "--data", root, "--color", "gray", "--normalize", "none",
                    "--out", tmp_path / "run")
    assert_one_line_error(result, "class folder 'b' looks like model output 2", "validation and training images",
                          "rename the class folders")
    in_order = _quadrant_images(tmp_path / "ordered", ["a", "b", "c", "d"], per_class=30)
    assert invoke("ship", tmp_path / "model.onnx", "--data", in_order, "--color", "gray", "--normalize", "none",
                  "--out", tmp_path / "run2").exit_code == 0


def test_bench_images_in_misnamed_class_folders_or_beside_them_are_not_quietly_unlabeled(tmp_path):
    """Trial defects (session 11): `edgekd bench --images` of folders bag/, boot/ for labels 8-bag, 9-boot, or of label
    folders with loose images beside them, fell back to fidelity (no labels) without a word; day folders still do."""
    from edgekd.data.sources import folder_by_labels

    labels = ["0-tshirt", "8-bag", "9-boot"]
    misnamed = _class_folders(tmp_path / "misnamed", classes=("bag", "boot"), per_class=2)
    with pytest.raises(DataError, match=r"sub-folder\(s\) bag, boot look like the model's labels .* not named as them"):
        folder_by_labels(misnamed, labels, "--images")
    mixed = _class_folders(tmp_path / "mixed", classes=("8-bag",), per_class=2)
    Image.new("L", (8, 8)).save(mixed / "loose.png")
    with pytest.raises(DataError, match=r"holds images beside class sub-folders named as the model's labels \(8-bag\)"):
        folder_by_labels(mixed, labels, "--images")
    days = _class_folders(tmp_path / "days", classes=("2024-05-01", "2024-05-02"), per_class=2)
    files, y = folder_by_labels(days, [str(k) for k in range(10)], "--images")
    assert len(files) == 4 and y is None
    named = _class_folders(tmp_path / "named", classes=("8-bag", "9-boot"), per_class=2)
    assert folder_by_labels(named, labels, "--images")[1].tolist() == [1, 1, 2, 2]


def test_ship_out_inside_data_and_a_mistyped_data_path_are_one_line(tmp_path):
    """Trial defects (session 11): --out inside --data made the run's folder a 'class folder holding no image' (and was
    left behind); a mistyped --data got the generic 'give a folder of images' without saying it does not exist."""
    from tests.device.conftest import tiny_classifier

    root = _class_folders(tmp_path / "images")
    tiny_classifier(tmp_path / "model.onnx")
    inside = invoke("ship", tmp_path / "model.onnx", "--data", root, "--out", root / "run")
    assert_one_line_error(inside, "inside --data", "give --out outside the data folder")
    assert sorted(p.name for p in root.iterdir()) == ["0", "1"]  # nothing left behind
    typo = invoke("ship", tmp_path / "model.onnx", "--data", tmp_path / "imgaes", "--out", tmp_path / "run")
    assert_one_line_error(typo, "imgaes': no such file or folder")


def test_test_images_of_some_classes_only_name_the_missing_class_and_what_works(tmp_path):
    """Trial defect (session 14): class folders 0, 1, 3 for a 4-class model said "the model's first output has shape
    (2, 4) but the data has 3 classes; ... check data.source", though the model IS (batch, classes). Now the message
    says the model has 4 outputs, the folders 3, which class has no folder, and what works (--no-labels)."""
    from tests.device.conftest import tiny_classifier

    root = _class_folders(tmp_path / "images", classes=[str(i) for i in range(10) if i != 2], per_class=4)
    tiny_classifier(tmp_path / "model.onnx")
    result = invoke("ship", tmp_path / "model.onnx", "--data", root, "--color", "gray", "--normalize", "none",
                    "--out", tmp_path / "run")
    message = assert_one_line_error(result, "the model has 10 outputs (classes) but the data has 9 class folders",
                                    "no folder for class 2", "folder i in sorted order is read as output i", "--no-labels")
    assert "first output has shape" not in message and "check data.source" not in message


def test_an_npz_without_one_label_is_not_told_to_renumber(tmp_path):
    """Trial defect (session 14): labels 0, 1, 3 said "renumber the labels", which mislabels a model trained elsewhere
    (its output 3 would be scored as 2). The message now asks for images of label 2, or --no-labels."""
    path = tmp_path / "missing2.npz"
    y = np.arange(40) % 4
    keep = y != 2
    np.savez(path, x=np.random.default_rng(0).random((40, 1, 4, 4))[keep], y=y[keep])
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(source="npz", path=str(path)), 0)
    message = str(error.value)
    assert "no image has label 2" in message and "add images of label 2" in message and "--no-labels" in message
    assert "renumber the labels, or" not in message
