"""The importer's error: always says which model, node, op, domain and opset."""

from __future__ import annotations

from tensor_ir.errors import TensorRankError


class ModelImportError(TensorRankError):
    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        node: str | None = None,
        op_type: str | None = None,
        domain: str | None = None,
        opset: int | None = None,
        needs_constant: bool = False,
    ) -> None:
        self.message = message
        self.model = model
        self.node = node
        self.op_type = op_type
        self.domain = domain
        self.opset = opset
        # True when the failure is only that an input had to be known at deploy time
        self.needs_constant = needs_constant
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.model:
            where.append(f"model '{self.model}'")
        if self.op_type:
            dom = self.domain or "ai.onnx"
            where.append(f"op {self.op_type} (domain {dom}, opset {self.opset})")
        if self.node is not None:
            where.append(f"node '{self.node}'")
        return (", ".join(where) + ": " if where else "") + self.message

    def located(self, **where: object) -> ModelImportError:
        """A copy with missing location fields filled in."""
        fields: dict[str, object] = {
            "model": self.model,
            "node": self.node,
            "op_type": self.op_type,
            "domain": self.domain,
            "opset": self.opset,
        }
        for k, v in where.items():
            if fields.get(k) is None:
                fields[k] = v
        return ModelImportError(self.message, needs_constant=self.needs_constant, **fields)  # type: ignore[arg-type]
