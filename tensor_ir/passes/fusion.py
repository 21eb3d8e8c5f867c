"""Fusion: cut a program into the steps a backend launches.

A step is either a *fused group* or a *single* node. A fused group has exactly the shape
of CuPy's kernels: a pre-map chain of elementwise nodes evaluated per element of one
iteration space, an optional reduction over some of its axes, and a post-map chain that
maps the reduced value (ElementwiseKernel when there is no reduction, ReductionKernel
otherwise). Matmul, the structural and indexing ops, and anything the backend cannot fuse
are single steps that run with library calls.

Fusion never duplicates work: a node is inlined into the group of its consumer only when
that consumer is its one user (and the node is not a program output), so every group is a
tree over its *leaves*, the values it reads from memory. Size-1 constants are
*immediates*: a renderer writes them into the kernel as literals instead of reading them.

The document axis: a group whose root is per-document iterates over [N, *shape]; a value
that is not per-document broadcasts into it (see reference.align). Inlining never crosses
from a query-only node into a per-document group, so query work is not repeated N times.
This module is backend-neutral: the backend passes `can_fuse` to say which nodes its
kernels can compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tensor_ir.ir import Node, Op
from tensor_ir.program import Program

ELEMENTWISE_OPS = frozenset({Op.MAP, Op.JOIN, Op.SELECT, Op.CAST, Op.BROADCAST})

# Given a node, can the backend's fused kernels compute it?
FusePredicate = Callable[[Node], bool]


def is_immediate(node: Node) -> bool:
    """A constant small enough to be written into a kernel as a literal."""
    return node.op is Op.CONSTANT and node.size == 1


def is_identity_reduce(node: Node) -> bool:
    """A reduce over no axes is the identity on its input's values."""
    return node.op is Op.REDUCE and not node.attrs["axes"]


def default_can_fuse(node: Node) -> bool:
    return node.op in ELEMENTWISE_OPS or is_identity_reduce(node) or node.op is Op.REDUCE


@dataclass(frozen=True)
class FusedGroup:
    """One kernel: `pre` per element of the iteration space, then `reduce`, then `post`.

    `pre` and `post` are in evaluation order. `leaves` are the values the kernel reads,
    in the order a renderer should number its parameters. The iteration space is the
    shape of the reduce's input (or of `root` without a reduce), with a leading document
    axis when `root` is per-document.
    """

    root: Node
    leaves: tuple[Node, ...]
    pre: tuple[Node, ...]
    reduce: Node | None = None
    post: tuple[Node, ...] = ()

    @property
    def space(self) -> tuple[int, ...]:
        """Per-document shape of the iteration space of the pre-map chain."""
        if self.reduce is not None:
            return self.reduce.inputs[0].shape
        return self.root.shape

    @property
    def per_document(self) -> bool:
        return self.root.per_document

    @property
    def nodes(self) -> tuple[Node, ...]:
        red = (self.reduce,) if self.reduce is not None else ()
        return (*self.pre, *red, *self.post)


@dataclass(frozen=True)
class SingleStep:
    """A node evaluated on its own by a library call (or the backend's fallback)."""

    node: Node

    @property
    def root(self) -> Node:
        return self.node


Step = FusedGroup | SingleStep


@dataclass
class FusionPlan:
    program: Program
    steps: list[Step] = field(default_factory=list)

    @property
    def groups(self) -> list[FusedGroup]:
        return [s for s in self.steps if isinstance(s, FusedGroup)]

    def describe(self) -> str:
        lines = [f"fusion plan: {len(self.steps)} steps, {len(self.groups)} fused groups"]
        for i, s in enumerate(self.steps):
            if isinstance(s, FusedGroup):
                red = f" reduce={s.reduce.attrs['agg']}{list(s.reduce.attrs['axes'])}" if s.reduce else ""
                lines.append(
                    f"  {i}: group pre={[n.op.label for n in s.pre]}{red} post={[n.op.label for n in s.post]}"
                    f" leaves={len(s.leaves)} -> {s.root.dtype.np_name}{list(s.root.shape)}"
                )
            else:
                lines.append(f"  {i}: {s.node.op.label} -> {s.node.dtype.np_name}{list(s.node.shape)}")
        return "\n".join(lines)


def _consumers(order: list[Node]) -> dict[int, list[Node]]:
    users: dict[int, list[Node]] = {id(n): [] for n in order}
    for n in order:
        seen: set[int] = set()
        for i in n.inputs:
            if id(i) not in seen:
                seen.add(id(i))
                users[id(i)].append(n)
    return users


def fuse(program: Program, can_fuse: FusePredicate = default_can_fuse) -> FusionPlan:
    """Cut `program` into fused groups and single steps, in an order that respects data flow."""
    order = program.nodes()
    position = {id(n): i for i, n in enumerate(order)}
    users = _consumers(order)
    outputs = {id(n) for n in program.outputs.values()}

    def elementwise(n: Node) -> bool:
        return (n.op in ELEMENTWISE_OPS or is_identity_reduce(n)) and can_fuse(n)

    def inlinable(p: Node, consumer: Node) -> bool:
        """Can `p` be computed inside the kernel of its consumer?"""
        if id(p) in outputs or p.op in (Op.INPUT, Op.CONSTANT):
            return False
        u = users[id(p)]
        if len(u) != 1 or u[0] is not consumer:
            return False
        return p.per_document == consumer.per_document

    def absorb(top: Node) -> list[Node]:
        """The elementwise tree under (and including) `top`, in evaluation order."""
        members: list[Node] = []
        stack = [top]
        while stack:
            n = stack.pop()
            members.append(n)
            for i in n.inputs:
                if elementwise(i) and inlinable(i, n):
                    stack.append(i)
        members.sort(key=lambda m: position[id(m)])
        return members

    def leaves_of(members: Iterable[Node]) -> tuple[Node, ...]:
        inside = {id(m) for m in members}
        found: dict[int, Node] = {}
        for m in sorted(members, key=lambda m: position[id(m)]):
            for i in m.inputs:
                if id(i) not in inside and not is_immediate(i) and id(i) not in found:
                    found[id(i)] = i
        return tuple(found.values())

    def post_chain(root: Node) -> tuple[list[Node], Node] | None:
        """Elementwise nodes from `root` down to a reduction whose other operands are all
        immediates (a ReductionKernel's post-map can read nothing else)."""
        chain: list[Node] = []
        cur = root
        while True:
            if not elementwise(cur) or cur.op is Op.BROADCAST or is_identity_reduce(cur):
                return None
            inner = [i for i in cur.inputs if not is_immediate(i)]
            if len(inner) != 1 or inner[0].shape != cur.shape:
                return None
            chain.append(cur)
            p = inner[0]
            if not inlinable(p, cur):
                return None
            if p.op is Op.REDUCE and not is_identity_reduce(p) and can_fuse(p):
                chain.reverse()
                return chain, p
            cur = p

    def reduction_group(red: Node, post: list[Node], root: Node) -> FusedGroup:
        src = red.inputs[0]
        pre = absorb(src) if elementwise(src) and inlinable(src, red) else []
        members = [*pre, red, *post]
        return FusedGroup(root=root, leaves=leaves_of(members), pre=tuple(pre), reduce=red, post=tuple(post))

    claimed: set[int] = set()
    steps: list[Step] = []
    # consumers first, so a node is claimed by the group of its consumer before it is
    # considered as a root of its own
    for node in reversed(order):
        if node.op in (Op.INPUT, Op.CONSTANT) or id(node) in claimed:
            continue
        step: Step
        if node.op is Op.REDUCE and not is_identity_reduce(node) and can_fuse(node):
            step = reduction_group(node, [], node)
        elif elementwise(node) and node.op is not Op.BROADCAST:
            chain = post_chain(node)
            if chain is not None:
                step = reduction_group(chain[1], chain[0], node)
            else:
                pre = absorb(node)
                step = FusedGroup(root=node, leaves=leaves_of(pre), pre=tuple(pre))
        else:
            step = SingleStep(node)
        if isinstance(step, FusedGroup):
            claimed.update(id(n) for n in step.nodes)
        else:
            claimed.add(id(node))
        steps.append(step)
    steps.sort(key=lambda s: position[id(s.root)])
    return FusionPlan(program, steps)
