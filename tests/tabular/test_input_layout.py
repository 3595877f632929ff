"""The student's preprocessing graph (edgekd/tabular/front.py) in both input layouts (data.inputs: columns, types):
it computes scikit-learn's features, the fp32 graph with it folded into the first layer gives the joined graph's
logits with fewer nodes, and rows given per type are checked column by column (one line naming the column)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import DataError
from edgekd.data.table_schema import COLUMNS, TYPES, layout_arrays, model_feed
from tests.tabular.conftest import table_rows


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from edgekd.data.config import DataConfig
    from edgekd.data.tabular import load_tabular_dataset
    from edgekd.tabular import student as st

    folder = tmp_path_factory.mktemp("layout")
    table_rows().to_csv(folder / "table.csv", index=False)
    data = load_tabular_dataset(DataConfig(source="csv", path="table.csv", target="grade", inputs="types"), 0, folder)
    return data, st.fit_preprocessing(data.schema, data.train.x)


def _schema(data, layout):
    from dataclasses import replace

    return replace(data.schema, layout=layout)


def _network(width_in: int, classes: int):
    """A two-layer network on 'features' as the torch exporter writes it: Gemm (transB), Relu, Gemm."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(8, width_in)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    w2, b2 = rng.normal(size=(classes, 8)).astype(np.float32), rng.normal(size=classes).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["features", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width_in])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("layout", [COLUMNS, TYPES])
def test_the_front_computes_scikit_learns_features(table, layout):
    from edgekd.tabular import student as st
    from edgekd.tabular.front import front_graph, plan_of
    from edgekd.tabular.runtime import run_onnx

    data, front = table
    schema = _schema(data, layout)
    model = front_graph(plan_of(front, schema), schema)
    names = [i.name for i in model.graph.input]
    assert names == (["numeric", "categorical"] if layout == TYPES else [c.name for c in schema.columns])
    got = run_onnx(model.SerializeToString(), layout_arrays(schema, data.test.x))
    assert np.allclose(got, st.features(front, data.test.x), atol=1e-5)


@pytest.mark.parametrize("layout", [COLUMNS, TYPES])
def test_the_folded_student_gives_the_joined_students_logits_with_fewer_nodes(table, layout, tmp_path):
    import onnx

    from edgekd.tabular import student as st
    from edgekd.tabular.front import folded_graph, front_graph, plan_from_graph, plan_of
    from edgekd.tabular.runtime import run_onnx

    data, front = table
    schema = _schema(data, layout)
    pre = front_graph(plan_of(front, schema), schema)
    network = _network(pre.graph.output[0].type.tensor_type.shape.dim[1].dim_value, data.num_classes)
    onnx.save(network, str(tmp_path / "net.onnx"))
    joined = st.join(pre, tmp_path / "net.onnx", tmp_path / "joined.onnx")
    folded = folded_graph(plan_from_graph(pre, schema), schema, network)  # as export reads it back from the run
    rows = layout_arrays(schema, data.test.x)
    assert np.allclose(run_onnx(folded.SerializeToString(), rows), run_onnx(str(joined), rows), atol=1e-4)
    assert len(folded.graph.node) < len(onnx.load(str(joined)).graph.node)
    assert not {n.op_type for n in folded.graph.node} & {"Gather"}  # the one-hot slot selection folded into the first Gemm


def test_a_value_of_another_column_is_ignored_as_scikit_learn_does(table):
    """One OneHotEncoder serves every category column: a value only another column holds must one-hot to zeros."""
    from edgekd.tabular import student as st
    from edgekd.tabular.front import front_graph, plan_of
    from edgekd.tabular.runtime import run_onnx

    data, front = table
    rows = {k: v[:1].copy() for k, v in data.test.x.items()}
    rows["color"] = np.array([["round"]])  # a shape, not a color
    model = front_graph(plan_of(front, data.schema), data.schema)
    assert np.allclose(run_onnx(model.SerializeToString(), layout_arrays(data.schema, rows)), st.features(front, rows), atol=1e-5)


def test_rows_given_per_type_are_checked_column_by_column(table):
    data, _ = table
    schema = data.schema
    good = layout_arrays(schema, {k: v[:2] for k, v in data.test.x.items()})
    assert model_feed(schema, good, "rows")["numeric"].dtype == np.float32
    categories = good["categorical"].copy()
    categories[1, schema.categorical.index("color")] = "purple"
    with pytest.raises(DataError, match=r"^rows: column 'color' holds the category 'purple' \(row 1\), unseen in the data the model was built from"):
        model_feed(schema, {**good, "categorical": categories}, "rows")
    numbers = good["numeric"].astype(object)
    numbers[0, schema.numeric.index("price")] = "cheap"
    with pytest.raises(DataError, match=r"^rows: column 'price' holds text \('cheap', row 0\) where the model takes numbers"):
        model_feed(schema, {**good, "numeric": numbers}, "rows")
    with pytest.raises(DataError, match=r"^rows: input 'categorical' is missing; it holds the columns color, shape$"):
        model_feed(schema, {"numeric": good["numeric"]}, "rows")
    with pytest.raises(DataError, match=r"^rows: input 'numeric' is \(2, 3\), but holds 4 columns"):
        model_feed(schema, {**good, "numeric": good["numeric"][:, :3]}, "rows")
    with pytest.raises(DataError) as caught:
        model_feed(schema, {**good, "categorical": categories}, "rows")
    assert "\n" not in str(caught.value)  # one line


def test_models_timed_together_each_get_their_best_thread_count(table, tmp_path):
    """The benchmark's speed-up comes from one interleaved measurement of the student and the ensemble."""
    from edgekd.device.latency import LatencySpec
    from edgekd.tabular.front import front_graph, plan_of
    from edgekd.tabular.runtime import best_latencies, thread_counts

    data, front = table
    per_type = front_graph(plan_of(front, data.schema), data.schema)
    per_column = front_graph(plan_of(front, _schema(data, COLUMNS)), _schema(data, COLUMNS))
    paths = {}
    for name, model in (("types", per_type), ("columns", per_column)):
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(model.SerializeToString())
    spec = LatencySpec(warmup_runs=1, warmup_seconds=0.0, runs=3, min_seconds=0.0, rounds=2)
    timed = best_latencies({"types": (str(paths["types"]), layout_arrays(data.schema, data.test.x)),
                            "columns": (str(paths["columns"]), data.test.x)}, spec)
    assert set(timed) == {"types", "columns"}
    for entry in timed.values():
        assert entry["p50_ms"] > 0 and set(entry["p50_ms_by_threads"]) == set(thread_counts())
        assert entry["p50_ms"] == entry["p50_ms_by_threads"][entry["threads"]]


def test_columns_named_as_the_graphs_own_tensors(tmp_path):
    """Columns called as the front's tensors ('numbers', 'features', 'one_hot', 'imputed') or the network's ('h', 'r')
    are the graph's inputs; its own tensors take other names, so the graph stays valid and computes the same. A column
    called as the model's output is refused in one line."""
    import onnx

    from edgekd.core.errors import ConfigError
    from edgekd.data.config import DataConfig
    from edgekd.data.tabular import load_tabular_dataset
    from edgekd.tabular import student as st
    from edgekd.tabular.front import folded_graph, front_graph, plan_from_graph, plan_of
    from edgekd.tabular.runtime import run_onnx

    renamed = {"size": "numbers", "price": "features", "color": "one_hot", "shape": "r", "y": "h", "tier": "imputed"}
    table_rows().rename(columns=renamed).to_csv(tmp_path / "names.csv", index=False)
    data = load_tabular_dataset(DataConfig(source="csv", path="names.csv", target="grade"), 0, tmp_path)
    front = st.fit_preprocessing(data.schema, data.train.x)
    pre = front_graph(plan_of(front, data.schema), data.schema)
    assert [i.name for i in pre.graph.input] == list(renamed.values())
    assert np.allclose(run_onnx(pre.SerializeToString(), data.test.x), st.features(front, data.test.x), atol=1e-5)
    network = _network(pre.graph.output[0].type.tensor_type.shape.dim[1].dim_value, data.num_classes)
    onnx.save(network, str(tmp_path / "net.onnx"))
    joined = st.join(pre, tmp_path / "net.onnx", tmp_path / "joined.onnx")
    folded = folded_graph(plan_from_graph(pre, data.schema), data.schema, network)
    assert np.allclose(run_onnx(folded.SerializeToString(), data.test.x), run_onnx(str(joined), data.test.x), atol=1e-4)

    table_rows().rename(columns={"size": "logits"}).to_csv(tmp_path / "out.csv", index=False)
    data = load_tabular_dataset(DataConfig(source="csv", path="out.csv", target="grade"), 0, tmp_path)
    pre = front_graph(plan_of(st.fit_preprocessing(data.schema, data.train.x), data.schema), data.schema)
    with pytest.raises(ConfigError, match=r"^data: column 'logits' has the name of the model's output; rename the column"):
        folded_graph(plan_from_graph(pre, data.schema), data.schema, network)
    with pytest.raises(ConfigError, match=r"^data: column 'logits' has the name of the model's output"):
        st.join(pre, tmp_path / "net.onnx", tmp_path / "joined.onnx")


def test_model_feed_given_one_array_is_one_line_naming_the_columns(table):
    """Trial defect (session 11): model_feed(schema, a 2-D array) raised AttributeError ('ndarray' has no 'items')."""
    data, _front = table
    with pytest.raises(DataError, match=r"rows.csv: give the rows as \{column name: values\}.*not one ndarray; the model's columns"):
        model_feed(data.schema, np.zeros((3, len(data.schema.columns))), "rows.csv")
