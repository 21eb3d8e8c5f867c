"""ONNX models called from a rank profile: finding the model, binding its inputs and
naming its outputs, as Vespa does.

An input is bound by the onnx-model block's mapping, else by the profile function named
like the input (Vespa's identifier for it: every character other than a letter, digit,
`_`, `$` or `@` becomes `_`; a TensorFlow-style port suffix `:0` may be left out, as
Vespa's converted models name their inputs). A value is bound **by rank and sizes**, as
Vespa's ONNX wire planner binds it: its dimensions, in Vespa's order (sorted by name),
are the model's axes in order, whatever they are called; a fixed axis must have the
value's size there, a symbolic one takes the size it is given (the same for every input
naming it), an unknown one any size. A value may also leave out a leading batch axis of
size 1 when its dimensions are named d1..dn. Outputs are named d0, d1, ... as in Vespa.
Only the models a profile calls are imported, so only their inputs need a source.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import onnx
from onnx import ValueInfoProto

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.compiler import Compiler
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue, as_double
from tensor_ir.ir import Node
from tensor_ir.onnx_import import ImportedModel, InputBinding, ModelImportError, import_model
from tensor_ir.onnx_import.bindings import is_static

if TYPE_CHECKING:
    from tensor_ir.expr.profile import OnnxModelDef

Dim = int | str | None


def vespa_identifier(name: str) -> str:
    """Vespa's way of making an ONNX name usable in expressions."""
    return re.sub(r"[^A-Za-z0-9_$@]", "_", name)


def function_candidates(onnx_name: str) -> list[str]:
    """Profile function names that may feed an unmapped input, in the order tried."""
    names = [vespa_identifier(onnx_name)]
    port = re.fullmatch(r"(.+):\d+", onnx_name)
    if port is not None:
        names.append(vespa_identifier(port.group(1)))
    return list(dict.fromkeys(names))


def model_output(ctx: Any, model: str, output: str | None, loc: Location, compiler: Compiler) -> TValue:
    """The value of `onnx(model).output` (the only output when none is named)."""
    imported, block = import_for_profile(ctx, model, loc, compiler)
    outputs = imported.program.outputs
    aliases: dict[str, str] = {}
    for onnx_name in outputs:
        aliases[onnx_name] = onnx_name
        aliases[vespa_identifier(onnx_name)] = onnx_name
    if block is not None:
        for onnx_name, alias in block.outputs.items():
            aliases[alias] = onnx_name
    names = ", ".join(sorted({vespa_identifier(o) for o in outputs}))
    if output is None:
        if len(outputs) != 1:
            raise RankingError(f"onnx({model}) has several outputs; name one of: {names}", loc)
        chosen = next(iter(outputs))
    else:
        if output not in aliases:
            raise RankingError(f"onnx({model}) has no output '{output}' (outputs: {names})", loc)
        chosen = aliases[output]
    return _output_value(outputs[chosen])


def import_for_profile(ctx: Any, model: str, loc: Location,
                       compiler: Compiler) -> tuple[ImportedModel, OnnxModelDef | None]:
    """The model imported with every input bound to a value of the profile (once per model)."""
    block = ctx.models.get(model)
    ref = block.file if block is not None else model
    label, proto = ctx.load_model(ref, block.loc if block is not None else loc)
    key = (label, block.name if block is not None else "")
    if key in ctx.imported:
        found: tuple[ImportedModel, OnnxModelDef | None] = ctx.imported[key]
        return found
    inits = {t.name for t in proto.graph.initializer}
    if block is not None:
        _check_block(block, proto, inits, label)
    bindings: dict[str, InputBinding] = {}
    symbols: dict[str, tuple[int, str]] = {}
    for vi in proto.graph.input:
        # an initializer listed as an input has a default value: bound only when a block maps it
        if vi.name in inits and (block is None or vi.name not in block.inputs):
            continue
        bindings[vi.name] = InputBinding(node=_bind_input(ctx, vi, block, label, loc, compiler, symbols))
    try:
        imported = import_model(proto, bindings, name=label)
    except ModelImportError as e:
        raise RankingError(str(e), loc) from None
    ctx.models_used.append(label)
    ctx.imported[key] = (imported, block)
    return imported, block


def _bind_input(ctx: Any, vi: ValueInfoProto, block: OnnxModelDef | None, label: str, loc: Location,
                compiler: Compiler, symbols: dict[str, tuple[int, str]]) -> Node:
    dims = _onnx_dims(vi)
    needed = _onnx_type_string(vi, dims)
    if block is not None and vi.name in block.inputs:
        source_text, src_loc = block.inputs[vi.name]
        expr = parse_expression(source_text, src_loc.file, src_loc.line, src_loc.column)
        try:
            value = Compiler(compiler.context).compile(expr)
        except RankingError as e:
            # Vespa: "undefined input" of the model, naming the source and the input it feeds
            raise RankingError(f"onnx-model '{block.name}' input '{vi.name}': {e.message}", e.location) from None
        # a mistyped source is the block's mistake: point at it
        return _to_model_input(value, vi, dims, needed, source_text, label, src_loc, symbols)
    candidates = function_candidates(vi.name)
    fname = next((c for c in candidates if ctx.has_function(c)), None)
    if fname is None:
        hint = f" (define function {candidates[0]}())" if candidates[0] != vi.name else ""
        raise RankingError(
            f"Model refers input '{vi.name}' of type {needed} but this function is not present in "
            f"rank profile '{ctx.profile.name}'{hint}",
            loc,
        )
    value = ctx.function(fname, [], loc, compiler)
    return _to_model_input(value, vi, dims, needed, f"function {fname}", label, loc, symbols)


def _check_block(block: OnnxModelDef, proto: onnx.ModelProto, inits: set[str], label: str) -> None:
    """An onnx-model block may only name inputs and outputs the model has."""
    inputs = [vi.name for vi in proto.graph.input if vi.name not in inits]
    for name, (_, src_loc) in block.inputs.items():
        if name not in inputs and name not in inits:
            raise RankingError(f"onnx-model '{block.name}' maps input '{name}', which {label} does not have "
                               f"(inputs: {', '.join(inputs) or 'none'})", src_loc)
    outputs = [o.name for o in proto.graph.output]
    for name in block.outputs:
        if name not in outputs:
            raise RankingError(f"onnx-model '{block.name}' names output '{name}', which {label} does not have "
                               f"(outputs: {', '.join(outputs)})", block.loc)


def _onnx_dims(vi: ValueInfoProto) -> list[Dim]:
    out: list[Dim] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _onnx_type_string(vi: ValueInfoProto, dims: list[Dim]) -> str:
    try:
        cell = CellType.from_onnx(vi.type.tensor_type.elem_type)
        cname = cell.vespa_name or cell.np_name
    except ValueError:
        cname = "?"
    body = ",".join(f"d{i}[{d if is_static(d) else ''}]" for i, d in enumerate(dims))
    return f"tensor<{cname}>({body})"


def _to_model_input(value: TValue, vi: ValueInfoProto, dims: list[Dim], needed: str, source: str, label: str,
                    loc: Location, symbols: dict[str, tuple[int, str]]) -> Node:
    rank = len(dims)
    vtype = value.type
    if vtype.is_mapped:
        # Vespa feeds a model dense tensors only; a mapped one has no axes to bind by rank
        raise RankingError(f"model {label} input '{vi.name}' needs {needed}, but {source} gives "
                           f"{vtype.value_type}, which has mapped dimensions: a model's inputs are dense "
                           "(Vespa refuses this too); give it an indexed tensor", loc)
    node = value.node
    shape = list(vtype.shape)
    batchless = {f"d{i}" for i in range(1, rank)}
    if rank > 0 and vtype.rank == rank - 1 and set(vtype.names) == batchless and (
            not is_static(dims[0]) or dims[0] == 1):
        # our one leniency over Vespa: d1..dn given, the batch axis d0 of size 1 added
        order = sorted(range(vtype.rank), key=lambda i: int(vtype.names[i][1:]))
        node = build.reshape(build.transpose(node, order), [1, *(shape[i] for i in order)])
        shape = list(node.shape)

    def refuse(why: str) -> RankingError:
        return RankingError(f"model {label} input '{vi.name}' needs {needed}, but {source} gives {vtype}: {why} "
                            "(Vespa binds a value by rank and sizes: its dimensions, sorted by name, are the "
                            "model's axes in order)", loc)

    if len(shape) != rank:
        raise refuse(f"{len(shape)} dimension{'s' if len(shape) != 1 else ''} for the model's {rank} axes")
    names = vtype.names if node is value.node else tuple(f"d{i}" for i in range(rank))
    for axis, (want, got) in enumerate(zip(dims, shape, strict=True)):
        if is_static(want) and want != got:
            raise refuse(f"dimension '{names[axis]}' has size {got} where axis {axis} has size {want}")
        if isinstance(want, str):
            bound = symbols.setdefault(want, (got, vi.name))
            if bound[0] != got:
                raise refuse(f"dimension '{names[axis]}' has size {got} where axis {axis} is '{want}', "
                             f"already {bound[0]} from input '{bound[1]}'")
    try:
        want_cell = CellType.from_onnx(vi.type.tensor_type.elem_type)
    except ValueError as e:
        raise RankingError(f"model {label} input '{vi.name}': {e}", loc) from None
    if want_cell.is_int and node.dtype.is_float:
        # token ids fed as float tensors, as Vespa users do: round, do not truncate 2.9999 to 2
        node = build.map_("round", node)
    return build.cast(node, want_cell)


def _output_value(node: Node) -> TValue:
    # axis i is dimension d{i}; Vespa orders dimensions by name (d10 before d2)
    names = [f"d{i}" for i in range(node.rank)]
    order = sorted(range(node.rank), key=lambda i: names[i])
    node = build.transpose(node, order)
    if node.dtype.vespa_name is None:
        node = build.cast(node, CellType.FLOAT32)
    dims = tuple((names[i], node.shape[k]) for k, i in enumerate(order))
    return as_double(TValue(node, TensorType(node.dtype, dims)))
