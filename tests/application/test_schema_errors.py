"""Malformed schemas, expressions and model bindings: each is refused at load time with a
SchemaError that says file:line:column and what was expected or wrong; none crashes or
hangs.

In each case `¦` marks where the error must be located (it is removed before loading).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from server.application.errors import SchemaError
from server.application.package import Application
from server.application.sd_parser import parse_schema

from .helpers import GENERATED, strange_names_model, write_app

MARK = "¦"
DOC = """schema s {
  document s {
    field v type tensor<float>(x[3]) { indexing: attribute }
    field img type tensor<float>(d1[784]) { indexing: attribute }
    field pop type float { indexing: attribute }
    field title type string { indexing: summary }
  }
"""


@dataclass
class Bad:
    text: str  # the whole schema, or a profile body to put in rank-profile p { ... } after DOC
    message: str
    models: list[str] = field(default_factory=list)
    setup: Callable[[Path], None] | None = None
    whole: bool = False


def profile(body: str, message: str, models: list[str] | None = None,
            setup: Callable[[Path], None] | None = None) -> Bad:
    return Bad(body, message, models or [], setup)


def schema(text: str, message: str) -> Bad:
    return Bad(text, message, whole=True)


def _symlink_out(root: Path) -> None:
    outside = root.parent / f"{root.name}-outside.onnx"
    outside.write_bytes(strange_names_model().SerializeToString())
    (root / "models").mkdir(exist_ok=True)
    os.symlink(outside, root / "models" / "link.onnx")


def _garbage_model(root: Path) -> None:
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "broken.onnx").write_bytes(b"\x08\x07garbage, not a protobuf\xff\xff")


MNIST = ["mnist_softmax.onnx"]
STRANGE = ["strange_names.onnx"]
STRANGE_FUNCTIONS = """function input_0() { expression: tensor<float>(d0[2])(1) }
    function input_1() { expression: tensor<float>(d0[2])(2) }"""

CASES: dict[str, Bad] = {
    # model bindings
    "missing binding function": profile(
        'first-phase { expression: sum(¦onnx("mnist_softmax.onnx")) }',
        "Model refers input 'Placeholder:0' of type tensor<float>(d0[],d1[784]) but this function is not "
        "present in rank profile 'p'", MNIST),
    "binding with the wrong dimensions": profile(
        """function Placeholder_0() { expression: attribute(v) }
    first-phase { expression: sum(¦onnx(mnist_softmax)) }""",
        "input 'Placeholder:0' needs tensor<float>(d0[],d1[784]), but function Placeholder_0 gives "
        "tensor<float>(x[3]): 1 dimension for the model's 2 axes", MNIST),
    "binding with the wrong size": profile(
        """function Placeholder_0() { expression: tensor<float>(d1[783])(1) }
    first-phase { expression: sum(¦onnx(mnist_softmax)) }""",
        "input 'Placeholder:0' needs tensor<float>(d0[],d1[784]), but function Placeholder_0 gives "
        "tensor<float>(d1[783]): dimension 'd1' has size 783 where axis 1 has size 784", MNIST),
    "block binding with the wrong dimensions": profile(
        """onnx-model m {
      file: models/mnist_softmax.onnx
      input "Placeholder:0": ¦attribute(v)
    }
    first-phase { expression: sum(onnx(m)) }""",
        "needs tensor<float>(d0[],d1[784]), but attribute(v) gives tensor<float>(x[3]): 1 dimension for the "
        "model's 2 axes", MNIST),
    "block binding to an unknown function": profile(
        """onnx-model m {
      file: models/mnist_softmax.onnx
      input "Placeholder:0": ¦no_such_function
    }
    first-phase { expression: sum(onnx(m)) }""",
        "unknown name 'no_such_function'", MNIST),
    "block naming an input the model lacks": profile(
        """onnx-model m {
      file: models/mnist_softmax.onnx
      input "Placeholder": ¦attribute(img)
    }
    first-phase { expression: sum(onnx(m)) }""",
        "onnx-model 'm' maps input 'Placeholder', which models/mnist_softmax.onnx does not have "
        "(inputs: Placeholder:0)", MNIST),
    "block naming an output the model lacks": profile(
        """onnx-model ¦m {
      file: models/mnist_softmax.onnx
      input "Placeholder:0": attribute(img)
      output "add": out
    }
    first-phase { expression: sum(onnx(m).out) }""",
        "onnx-model 'm' names output 'add', which models/mnist_softmax.onnx does not have (outputs: add:0)", MNIST),
    "multi-output model without an output name": profile(
        STRANGE_FUNCTIONS + "\n    first-phase { expression: sum(¦onnx(strange_names)) }",
        "onnx(strange_names) has several outputs; name one of: _baz_0, foo_bar", STRANGE),
    "unknown output name": profile(
        STRANGE_FUNCTIONS + "\n    first-phase { expression: sum(¦onnx(strange_names).foo) }",
        "onnx(strange_names) has no output 'foo' (outputs: _baz_0, foo_bar)", STRANGE),
    "model path with ..": profile(
        'first-phase { expression: sum(¦onnx("../../etc/model.onnx")) }',
        "model file '../../etc/model.onnx' may not leave the application package ('..')"),
    "absolute model path": profile(
        'first-phase { expression: sum(¦onnx("/etc/model.onnx")) }',
        "model file '/etc/model.onnx' must be a path inside the application package, not absolute"),
    "symlink out of the package": profile(
        'first-phase { expression: sum(¦onnx("link.onnx")) }',
        "model file 'models/link.onnx' resolves outside the application package (symbolic link?)",
        setup=_symlink_out),
    "onnx-model block file with ..": profile(
        """onnx-model ¦m {
      file: ../m.onnx
    }
    first-phase { expression: sum(onnx(m)) }""",
        "model file '../m.onnx' may not leave the application package"),
    "model file not found": profile(
        'first-phase { expression: sum(¦onnx("nope.onnx")) }',
        "model file 'nope.onnx' not found in the package (looked in models/nope.onnx, nope.onnx)"),
    "model file that is not ONNX": profile(
        'first-phase { expression: sum(¦onnx("broken.onnx")) }',
        "not a valid ONNX protobuf", setup=_garbage_model),
    # references
    "unknown attribute": profile(
        "first-phase { expression: ¦attribute(nope) * 2 }",
        "attribute(nope): the schema has no field 'nope'"),
    "string field as attribute": profile(
        "first-phase { expression: 1 + ¦attribute(title) }",
        "attribute(title): field 'title' is not a numeric or tensor attribute"),
    "unknown constant": profile(
        "first-phase { expression: sum(¦constant(w)) }",
        "constant(w) is not defined (constants: none)"),
    "unknown function": profile(
        "first-phase { expression: ¦foo(1) }",
        "unknown function 'foo' (not a rank profile function nor a supported feature)"),
    "recursive functions": profile(
        """function a() { expression: b + 1 }
    function b() { expression: ¦a * 2 }
    first-phase { expression: a }""",
        "function 'a' calls itself: a -> b -> a"),
    "wrong arity": profile(
        """function scale(t, k) { expression: t * k }
    first-phase { expression: sum(¦scale(attribute(v))) }""",
        "function 'scale' takes 2 arguments (t, k), got 1"),
    # types
    "a dimension both mapped and indexed in a field": schema(
        "schema s {\n  document s {\n    field t type ¦tensor<float>(x{},x[2]) { indexing: attribute }\n  }\n}\n",
        "field 't': dimension names repeat: ['x', 'x']"),
    "a mapped dimension twice in a query input": profile(
        "inputs {\n      ¦query(q) tensor(cat{},cat{})\n    }\n    first-phase { expression: 1 }",
        "query(q): dimension names repeat: ['cat', 'cat']"),
    "bad tensor type syntax": schema(
        "schema s {\n  document s {\n    field t type tensor<float>(x[3] { indexing: attribute }\n  ¦}\n}\n",
        "expected ')' to close the '(' at 3:31, found '}'"),
    "unknown cell type": profile(
        "inputs { ¦query(q) tensor<half>(x[2]) }\n    first-phase { expression: 1 }",
        "query(q): unknown Vespa cell type 'half' (expected float, double, bfloat16 or int8)"),
    "query default of the wrong size": profile(
        "inputs { ¦query(q) tensor(x[2]): [1, 2, 3] }\n    first-phase { expression: 1 }",
        "query(q): bad value: tensor(x[2]) has 2 cells but 3 values are given"),
    "first-phase that is not one number per document": profile(
        "first-phase { expression: ¦attribute(v) * 2 }".replace("¦attribute(v) * 2", "attribute(v) ¦* 2"),
        "the first-phase expression must produce one number per document, but produces tensor<float>(x[3])"),
    "second-phase that is not one number per document": profile(
        "first-phase { expression: 1 }\n    second-phase { expression: ¦attribute(v) }",
        "the second-phase expression must produce one number per document"),
    "unknown aggregator": profile(
        "first-phase { expression: reduce(attribute(v), ¦average) }",
        "unknown aggregator 'average' (expected one of sum, avg, count, max, min, prod"),
    "dimension size mismatch in a join": profile(
        "inputs { query(q) tensor<float>(x[4]) }\n    first-phase { expression: sum(attribute(v) ¦* query(q)) }",
        "dimension 'x' has size 3 in one operand and 4 in another"),
    "reduce over a missing dimension": profile(
        "first-phase { expression: sum(¦sum(attribute(v), y)) }",
        "cannot reduce over dimension 'y': the value has type tensor<float>(x[3])"),
    # syntax
    "expression syntax error": profile(
        "first-phase { expression: 1 + ¦* 2 }",
        "expected a number, a name, a function call or '(', found '*'"),
    "syntax error inside a multi-line function": profile(
        "function f() {\n      expression {\n        1 +\n          ¦)\n      }\n    }\n"
        "    first-phase { expression: f }",
        "')' closes nothing: no bracket is open here"),
    "unterminated string in an expression": profile(
        'first-phase { expression: sum(onnx(¦"abc)) }',
        'unterminated string: missing the closing " of the string that starts here'),
    "unexpected character": profile(
        "first-phase { expression: 1 ¦; 2 }",
        "unexpected character ';'"),
    "unterminated function block": profile(
        "function f() { expression: 1\n    ¦first-phase { expression: f }",
        "expected 'expression' or '}' in function 'f' (opened at 9:14), found 'first-phase'"),
    "unterminated rank profile": schema(
        DOC + "  rank-profile p {\n    first-phase { expression: 1 }\n¦",
        "missing '}' at the end of rank profile 'p'"),
    "unterminated schema": schema(
        DOC + "  rank-profile p {\n    first-phase { expression: 1 }\n  }\n¦",
        "missing '}' at the end of the schema"),
    "too deeply nested": profile(
        "first-phase { expression: " + "(" * 100 + "¦(" + "(" * 199 + "1" + ")" * 300 + " }",
        "expression nests more than 100 levels deep"),
    "rerank-count not a number": profile(
        "first-phase { expression: 1 }\n    second-phase {\n      rerank-count: ¦many\n      expression: 1\n    }",
        "rerank-count must be a whole number, got 'many'"),
    # structure
    "unknown rank profile element": profile(
        "¦frist-phase { expression: 1 }", "unknown rank profile element 'frist-phase'"),
    "unsupported rank profile element": profile(
        "first-phase { expression: 1 }\n    ¦mutate { on-match { a += 1 } }",
        "rank profile 'mutate' (updating attributes while ranking) is not supported"),
    "unknown schema element": schema(
        DOC + "  ¦rank-profiles p { }\n}\n", "unknown schema element 'rank-profiles'"),
    "unknown onnx-model property": profile(
        "onnx-model m {\n      file: models/x.onnx\n      ¦inputs a: b\n    }\n    first-phase { expression: 1 }",
        "unknown onnx-model property 'inputs' (expected file, input or output)"),
    "onnx-model without a file": profile(
        "onnx-model ¦m {\n      input a: attribute(v)\n    }\n    first-phase { expression: 1 }",
        "onnx-model 'm' has no file"),
    "duplicate function": profile(
        "function f() { expression: 1 }\n    function ¦f() { expression: 2 }\n    first-phase { expression: f }",
        "function 'f' is defined twice in rank profile 'p'"),
    "inherits an unknown profile": schema(
        DOC + "  rank-profile ¦p inherits q {\n    first-phase { expression: 1 }\n  }\n}\n",
        "rank profile 'p' inherits unknown profile 'q'"),
    "duplicate field": schema(
        "schema s {\n  document s {\n    field a type float { indexing: attribute }\n"
        "    field ¦a type double { indexing: attribute }\n  }\n}\n",
        "field 'a' is defined twice"),
    "document named unlike its schema": schema(
        "schema s {\n  document ¦t {\n  }\n}\n", "document type 't' must be named like its schema 's'"),
    "collection of an unknown struct": schema(
        "schema s {\n  document s {\n    field ¦a type array<purchase> { indexing: summary }\n  }\n}\n",
        "field 'a': unknown type 'purchase' (no struct of that name in the document)"),
    "unknown field property": schema(
        "schema s {\n  document s {\n    field a type float {\n      ¦indexng: attribute\n    }\n  }\n}\n",
        "field 'a': unknown field setting 'indexng'"),
    "unknown indexing function": schema(
        "schema s {\n  document s {\n    field a type string { indexing: input b | ¦embedd e5 | summary }\n  }\n}\n",
        "field 'a': unknown indexing function 'embedd'"),
    "no schema keyword": schema("¦documents s { }\n", "expected 'schema', found 'documents'"),
    "text after the schema": schema(
        "schema s {\n  document s {\n  }\n}\n¦}\n", "unexpected text after the end of the schema"),
}


def located(text: str) -> tuple[str, int, int]:
    assert text.count(MARK) == 1, text
    before = text[:text.index(MARK)]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, ""), line, col


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed(tmp_path: Path, name: str) -> None:
    bad = CASES[name]
    text = bad.text if bad.whole else DOC + "  rank-profile p {\n    " + bad.text + "\n  }\n}\n"
    text, line, col = located(text)
    root = write_app(tmp_path / "app", {"s": text}, {m: GENERATED[m]() for m in bad.models})
    if bad.setup:
        bad.setup(root)
    with pytest.raises(SchemaError) as err:
        Application.load(root)
    e = err.value
    assert bad.message in e.message
    assert e.location is not None
    assert (e.location.file, e.location.line, e.location.column) == ("schemas/s.sd", line, col), str(e)
    assert str(e).startswith(f"schemas/s.sd:{line}:{col}: ")


VALID = DOC + """  constant w { file: constants/w.json
    type: tensor<float>(x[3]) }
  onnx-model top {
    file: models/m.onnx
    input "in:0": attribute(v)
    output "out/1": o
  }
  rank-profile base {
    inputs {
      query(q) tensor<float>(x[3]): [1, 2, 3]
      query(k) double: 0.5
    }
    constants { c tensor(x[2]): [1, 2] }
    function f(a, b) { expression: if(a > b, a, b) * query(k) }
    macro g() {
      expression {
        # a comment
        sum(map(attribute(v), f(x)(x * 2)) * query(q)) + f(attribute(pop), 1)
      }
    }
  }
  rank-profile p inherits base {
    first-phase { expression: g + reduce(tensor(x[2],y[2])(x + y), max, x){y:1} }
    second-phase { rerank-count: 10 expression: firstPhase * sum(constant(c)) }
    match-features: g attribute(pop) tensor(x[2]):{{x:0}:1,{x:1}:attribute(pop)}
  }
}
"""


def test_every_truncation_is_a_located_error() -> None:
    """No prefix of a valid schema crashes or hangs the parser."""
    parse_schema(VALID, "schemas/s.sd")
    for end in range(0, len(VALID) - 1, 3):
        text = VALID[:end]
        if not text.strip().endswith("}"):
            with pytest.raises(SchemaError):
                parse_schema(text, "schemas/s.sd")
        else:
            try:
                parse_schema(text, "schemas/s.sd")
            except SchemaError as e:
                assert e.location is not None


def test_random_edits_never_crash(tmp_path: Path) -> None:
    """Characters deleted, doubled or replaced at random (fixed seed): loading either
    succeeds or fails with a located SchemaError, never with anything else."""
    rnd = random.Random(20261126)
    alphabet = "(){}[]<>:,.\"'#+-*/ \nx0$"
    failures = 0
    for i in range(100):
        text = list(VALID)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randrange(len(text))
            kind = rnd.choice(("delete", "double", "replace"))
            if kind == "delete":
                del text[at]
            elif kind == "double":
                text.insert(at, text[at])
            else:
                text[at] = rnd.choice(alphabet)
        root = write_app(tmp_path / f"app{i}", {"s": "".join(text)}, {"m.onnx": _valid_model()},
                         {"constants/w.json": "[1, 2, 3]"})
        try:
            Application.load(root)
        except SchemaError as e:
            assert e.location is not None, str(e)
            failures += 1
    assert failures > 40  # most random edits break something


def _valid_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Neg", ["in:0"], ["out/1"])], "m",
                              [helper.make_tensor_value_info("in:0", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("out/1", TensorProto.FLOAT, [3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_valid_schema_loads(tmp_path: Path) -> None:
    app = Application.load(write_app(tmp_path, {"s": VALID}, {"m.onnx": _valid_model()},
                                     {"constants/w.json": "[1, 2, 3]"}))
    assert set(app.schemas["s"].profiles) == {"p"}
