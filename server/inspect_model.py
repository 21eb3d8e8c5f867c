"""`tensorrank inspect`: what a model needs and what it becomes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tensor_ir.ir import Op
from tensor_ir.onnx_import import ModelImportError, import_model, load_model
from tensor_ir.onnx_import.registry import canonical_domain, lookup
from tensor_ir.trees import MalformedForest, canonical_forest
from tensor_ir.trees.lightgbm_json import lightgbm_forest
from tensor_ir.trees.xgboost_json import xgboost_forest


def inspect_model(path: str) -> tuple[str, bool]:
    if path.endswith(".json"):
        return _inspect_gbdt(path)
    try:
        proto = load_model(path)
    except ModelImportError as e:
        return f"error: {e}", False
    lines = [f"model: {Path(path).name}  (ir_version {proto.ir_version}, producer '{proto.producer_name}')"]
    opsets = {canonical_domain(o.domain) or "ai.onnx": int(o.version) for o in proto.opset_import}
    lines.append("opsets: " + ", ".join(f"{d} {v}" for d, v in sorted(opsets.items())))
    inits = {t.name for t in proto.graph.initializer}
    lines.append("inputs:")
    for vi in proto.graph.input:
        if vi.name not in inits:
            lines.append(f"  {vi.name}: {_type(vi)}")
    lines.append("outputs:")
    for vi in proto.graph.output:
        lines.append(f"  {vi.name}: {_type(vi)}")
    hist = Counter(n.op_type if not n.domain else f"{n.domain}.{n.op_type}" for n in proto.graph.node)
    lines.append("ops: " + ", ".join(f"{op} x{n}" for op, n in hist.most_common()))
    unsupported = []
    for n in proto.graph.node:
        dom = canonical_domain(n.domain)
        found = lookup(dom, n.op_type, opsets.get(dom or "ai.onnx", 0))
        if found.fn is None:
            unsupported.append(f"{n.op_type} ({found.reason})")
    ok = True
    try:
        imported = import_model(proto, name=Path(path).name)
        lines.append(imported.program.describe())
        for node in imported.program.nodes():
            if node.op is Op.TREE_ENSEMBLE:
                lines.append(f"tree ensemble '{node.label}': {node.attrs['forest'].describe()}")
    except ModelImportError as e:
        lines.append(f"conversion failed: {e}")
        ok = False
    if unsupported:
        lines.append("ops without a direct converter (expanded from onnx function bodies where onnx defines "
                     "one): " + ", ".join(sorted(set(unsupported))))
    return "\n".join(lines), ok


def _inspect_gbdt(path: str) -> tuple[str, bool]:
    """An XGBoost or LightGBM dump, as xgboost() and lightgbm() read it."""
    name = Path(path).name
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"error: {name}: {e}", False
    kind, reader = ("lightgbm", lightgbm_forest) if isinstance(data, dict) else ("xgboost", xgboost_forest)
    try:
        spec = reader(data, name)
        forest = canonical_forest(spec)
    except MalformedForest as e:
        return f"error: {e}", False
    lines = [f"model: {name}  ({kind} dump, read by {kind}(\"{name}\"))", forest.describe(),
             "features (rank features or profile functions, by name): " + ", ".join(spec.feature_names)]
    return "\n".join(lines), True


def _type(vi: object) -> str:
    t = vi.type.tensor_type  # type: ignore[attr-defined]
    import onnx

    elem = onnx.TensorProto.DataType.Name(t.elem_type)
    dims = []
    for d in t.shape.dim:
        dims.append(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?"))
    return f"{elem}[{', '.join(dims)}]"
