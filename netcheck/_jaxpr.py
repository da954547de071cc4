"""Every custom_vjp / custom_jvp rule a program reaches, with the values it receives there.

This is the only module of netcheck that reads JAX internals. It is tested on the JAX
versions in ``SUPPORTED_JAX``; on any other version ``find_rules`` raises
``UnsupportedJaxVersion`` (one message naming the installed and the supported
versions) unless ``NETCHECK_ALLOW_UNTESTED_JAX=1`` is set, in which case it warns and runs,
still checking its own result against the traced program (below).

Contract
--------
``find_rules(fn, *args, **kwargs)`` returns one ``ReachedRule`` per call site: per rule,
line that calls it, argument structure, shapes and dtypes (distinct sites of one rule stay
apart; repeated identical calls, such as scan iterations, are one record with a count).
Each record holds the rule object itself (``jax.custom_vjp`` or ``jax.custom_jvp``), so that
the caller can check it at ``record.args``. Rules JAX defines (``jax.nn.relu``,
``jax.nn.softmax``, ...) are rules the program reaches too; ``location`` says where each one
lives. A rule calling itself inside its own fwd or jvp (the usual ``return f(x), res``) is
part of that call, not another site.

How: two passes, both with ``jax.custom_vjp.__call__`` and ``jax.custom_jvp.__call__`` wrapped
-------------------------------------------------------------------------------------------------
Wrapping the rule's own ``__call__`` sees each call with the rule object and the arguments
exactly as the rule gets them: the pytree, the nondiff arguments, keywords resolved to
positions as JAX resolves them (defaults included), so ``args`` alone reproduce the call.
The wrappers are in place only while find_rules runs (calls of find_rules take turns) and
see only the thread that called it.

1. **Trace.** ``jax.make_jaxpr`` traces ``fn`` (array leaves abstracted, every other leaf as
   given). Each rule call seen becomes a *site*: the rule, the line that called it, the
   arguments' pytree, shapes and dtypes (one example's under vmap), and its path, read from
   JAX's stack of traces (``jit(model) > scan > vmap``; the segments are ``jit(name)``,
   ``scan``, ``fori_loop``, ``cond``, ``switch``, ``while_loop``, ``while_loop cond``,
   ``remat``, ``vmap``, ``jvp``, ``linearize`` for grad, and the enclosing rule's name for a
   rule called inside another rule's primal). JAX caches the traces of jit, scan, cond,
   while_loop and remat bodies and would then skip the Python that calls the rule; a
   trace-context key of netcheck's own, fresh for every call of find_rules, makes every body
   trace again (those traces stay in JAX's caches under their key until JAX evicts them; the
   user's own cached traces are neither used nor touched). The jaxpr is then a witness: each
   custom-call equation in it must belong to a rule the wrapper saw, or find_rules raises
   ``UnsupportedJaxVersion`` rather than return too few rules. Rules in a cond/switch
   branch not taken, or in a loop that runs zero times, are found here, and only here.
2. **Evaluate.** ``fn`` runs again, op by op, under ``jax.disable_jit()``. In JAX 0.10 that
   runs jit bodies as plain Python; scan and fori_loop as Python loops over concrete slices;
   while_loop as a Python loop when its predicate is concrete; cond/switch with a concrete
   index only the branch taken; vmap with BatchTracers over concrete batches. So each rule call
   arrives with concrete values:

   - under vmap, the values of example 0 of every vmapped axis (the rule sees one example);
   - under jvp/grad inside ``fn``, the primal values;
   - inside a region JAX stages even so (remat/checkpoint; a cond or while_loop whose
     predicate vmap batches), a ``jax.debug.callback`` placed before the rule delivers the
     values when the region runs. Under vmap that callback is unrolled once per example
     (one slice compiled per example: seconds per rule at batch 64 on a 2-core machine), so
     there only the evaluations are counted and the values are reported as not recovered.

   This pass uses a fixed trace-context key of its own, so that no trace JAX cached outside
   find_rules (say, from the user's own ``disable_jit`` debugging) hides a rule from it.

Why not the other technique (walking the jaxpr and evaluating it)
-----------------------------------------------------------------
A jaxpr interpreter that records the operands of each ``custom_vjp_call``/``custom_jvp_call``
equation was tried first: the equation names no Python rule object, holds a custom_jvp's
nondiff arguments only as closed-over constants, flattens the argument pytree, and, the
decisive point, once vmap has run (``vmap(jit(model))`` is the common case) the equation holds
batched operands with no record of which axis is the batch: custom_vjp's vmap rule passes each
operand's batch axis wherever it was. A compiled run with ``jax.debug.callback`` before each
rule has the unrolling problem above for every rule under vmap (47 s to compile one rule at
batch 1024 on a 2-core machine).

What ``count`` means
--------------------
How many times the rule ran on one example at these arguments: loop iterations times vmap
sizes times Python-level repeats; 0 for a site that is in the program but not reached here.
Under vmap with a batched predicate JAX evaluates both branches of a cond for every example
(a select), and a batched while_loop runs its body for every example until all are done: those
evaluations count. Under differentiation inside ``fn``, remat may run its body twice: both count.

Limits
------
- ``fn`` runs twice; the evaluation is as slow as unjitted JAX: long scans run as Python
  loops, and each primitive compiles once per shape and process (for a jitted, vmapped
  4-layer MLP of width 256 at batch 64: 9 s the first time, 0.3 s after, against 4 s for
  compiling and running its ``jax.grad``, on a loaded 2-core machine). Its values can differ
  from the compiled program's by rounding, since XLA fuses.
- A zero-length scan cannot run under ``disable_jit``. If the evaluation raises, every site is
  returned from the trace with its values not recovered and the error as the reason.
- Values delivered by the callback (staged regions) are numpy arrays, strongly typed.
- Sites are told apart by the values of Python scalars only in nondiff arguments: elsewhere
  a Python scalar is an array of shape () (a scan's carry is a Python float in its first
  iteration op by op, a traced array otherwise), so one line calling a rule with 0.5 then
  with 2.0 is one site, checked at 0.5.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import jax
import numpy as np

SUPPORTED_JAX = ((0, 10, 0), (0, 11, 0))
"""Versions the finder is tested on: from the first (included) to the second (excluded)."""
TESTED_JAX = "0.10.2"
ALLOW_UNTESTED_JAX = "NETCHECK_ALLOW_UNTESTED_JAX"
"""Set this environment variable to ``1`` to run on an untested JAX (with a warning)."""

_CUSTOM_CALLS = ("custom_vjp_call", "custom_jvp_call")
_ROOT = "netcheck_find_rules_program"  # name of the function make_jaxpr traces, left out of paths
_STAGED_LABELS = {  # JAX's `traced_for` of a staged trace -> its segment of a path
    "jit": "jit({name})",
    "while_body": "while_loop",
    "while_cond": "while_loop cond",
    "checkpoint / remat": "remat",
}
_RULE_PRIMAL = ("custom_jvp fun", "custom_vjp fun")  # traces of a rule's own primal
_KEY_NAME = "netcheck_rule_finder_key"  # a JAX config option of netcheck's, in the trace context
_EVALUATE_KEY = -1  # its value in every evaluation pass
_trace_keys = itertools.count(1)  # one fresh key per trace pass


class UnsupportedJaxVersion(RuntimeError):
    """JAX is not a version the rule finder is tested on, or does not behave as that one did."""


@dataclass(frozen=True)
class ReachedRule:
    """One custom rule at one call site of a program, and where the program reaches it.

    Attributes:
        rule: the ``jax.custom_vjp`` / ``jax.custom_jvp`` object (``rule.fun`` is its primal).
        kind: ``"custom_vjp"`` or ``"custom_jvp"``.
        name: the primal's ``__qualname__``.
        location: where the primal is defined, ``"path/to/file.py:123"``.
        call_site: the line that calls the rule, ``"path/to/model.py:45"`` (the innermost
            frame outside JAX, so a rule JAX calls for you is placed at your call of JAX).
        nondiff_argnums: the rule's ``nondiff_argnums``.
        args: the positional arguments the rule got (keywords resolved to positions, nondiff
            arguments included), pytrees as given. Where values were not recovered, each
            traced leaf is a ``jax.ShapeDtypeStruct`` of one example; leaves known without
            running (Python scalars, constants) keep their values.
        values_recovered: whether ``args`` holds the values of the first evaluation.
        why_not_recovered: the reason, when they are not.
        count: per-example evaluations at these arguments (0: traced but not reached).
        path: the transformations around the call, outermost first, ``"jit(model) > scan >
            vmap"`` ("" at top level; several paths of one site joined by " | ").
    """

    rule: Any
    kind: str
    name: str
    location: str
    call_site: str
    nondiff_argnums: tuple[int, ...]
    args: tuple
    values_recovered: bool
    why_not_recovered: str | None
    count: int
    path: str


def find_rules(fn: Callable, /, *args: Any, **kwargs: Any) -> list[ReachedRule]:
    """Every custom_vjp/custom_jvp rule ``fn(*args, **kwargs)`` reaches, with its values there.

    Args:
        fn: any JAX-traceable function (jitted or not); it is traced once and run once.
        *args, **kwargs: its arguments. Array leaves are traced; other leaves stay as given.

    Returns:
        One record per call site, in the order the trace meets them.

    Raises:
        UnsupportedJaxVersion: JAX is outside ``SUPPORTED_JAX`` (see the module docstring),
            or the trace holds a custom call the finder did not see.
    """
    jx = _internals()
    log = _Log()
    with _intercepting(log):
        jaxpr = _trace(jx, fn, args, kwargs)
        _require_all_seen(jx, jaxpr, log)
        failure = _evaluate(jx, fn, args, kwargs, log)
    return _records(log, failure)


def is_supported_jax(version: str | None = None) -> bool:
    """Whether ``version`` (default: JAX's) lies in ``SUPPORTED_JAX``."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", jax.__version__ if version is None else version)
    return bool(match) and SUPPORTED_JAX[0] <= tuple(map(int, match.groups())) < SUPPORTED_JAX[1]


def check_jax_version(version: str | None = None) -> None:
    """Raise ``UnsupportedJaxVersion`` unless ``version`` (default: JAX's) is supported."""
    installed = jax.__version__ if version is None else version
    if is_supported_jax(installed):
        return
    supported = "JAX >= {}, < {}".format(*(".".join(map(str, v)) for v in SUPPORTED_JAX))
    if os.environ.get(ALLOW_UNTESTED_JAX) == "1":
        warnings.warn(
            f"netcheck's rule finder runs on untested JAX {installed} ({supported} tested, "
            f"{ALLOW_UNTESTED_JAX}=1 is set)",
            stacklevel=3,
        )
        return
    raise UnsupportedJaxVersion(
        f"netcheck finds custom rules through JAX internals and is tested on {supported} "
        f"(last on {TESTED_JAX}); the installed JAX is {installed}. Install a tested JAX, or "
        f"set {ALLOW_UNTESTED_JAX}=1 to try this one (the finder still raises this error if "
        "the traced program holds a custom rule it did not see)."
    )


# --- the JAX internals read, in one place -------------------------------------------------


def _internals() -> SimpleNamespace:
    """The JAX internals this module reads, after checking the JAX version."""
    check_jax_version()
    try:
        return _load_internals()
    except (ImportError, AttributeError) as error:
        raise UnsupportedJaxVersion(
            f"JAX {jax.__version__} lacks an internal netcheck's rule finder reads: {error}"
        ) from error


@functools.cache
def _load_internals() -> SimpleNamespace:
    from jax._src import api_util, config, core
    from jax._src.interpreters import ad, batching, partial_eval

    return SimpleNamespace(
        trace_ctx=core.trace_ctx,
        EvalTrace=core.EvalTrace,
        Jaxpr=core.Jaxpr,
        ClosedJaxpr=core.ClosedJaxpr,
        BatchTrace=batching.BatchTrace,
        BatchTracer=batching.BatchTracer,
        primal_tracers=(ad.JVPTracer, ad.LinearizeTracer),
        labels={batching.BatchTrace: "vmap", ad.JVPTrace: "jvp", ad.LinearizeTrace: "linearize"},
        DynamicJaxprTrace=partial_eval.DynamicJaxprTrace,
        resolve_kwargs=api_util.resolve_kwargs,
        fun_sourceinfo=api_util.fun_sourceinfo,
        key=config.config_states.get(_KEY_NAME)  # registered already if this module reloads
        or config.int_state(
            _KEY_NAME,
            0,
            "netcheck's own trace-context key: keeps find_rules' traces apart in JAX's caches",
            include_in_trace_context=True,
            include_in_jit_key=True,
        ),
    )


def _trace_stack(jx: SimpleNamespace) -> list:
    """JAX's traces around the current call, outermost first (the eager root left out)."""
    trace, stack = jx.trace_ctx.trace, []
    while trace is not None and not isinstance(trace, jx.EvalTrace):
        stack.append(trace)
        trace = getattr(trace, "parent_trace", None)
    return stack[::-1]


def _staged_info(jx: SimpleNamespace, trace: Any) -> Any:
    """The debug info of a staged trace (traced_for, func_name), or None."""
    if isinstance(trace, jx.DynamicJaxprTrace):
        return trace.frame.debug_info
    return None


def _label(jx: SimpleNamespace, trace: Any) -> str:
    """One segment of a path: ``vmap``, ``jit(model)``, ``scan``, ``remat``, ..."""
    for kind, label in jx.labels.items():
        if isinstance(trace, kind):
            return label
    info = _staged_info(jx, trace)
    if info is None:
        return type(trace).__name__
    return _STAGED_LABELS.get(info.traced_for, info.traced_for).format(name=info.func_name)


def _one_example(jx: SimpleNamespace, leaf: Any) -> Any:
    """The value a rule sees for ``leaf``: example 0 of each vmapped axis, primal of a jvp."""
    axes = []
    while isinstance(leaf, jax.core.Tracer):
        if isinstance(leaf, jx.BatchTracer):
            if leaf.batch_dim is not None:
                axes.append(leaf.batch_dim)
            leaf = leaf.val
        else:
            leaf = leaf.primal
    with jax.ensure_compile_time_eval():
        for axis in reversed(axes):  # the outermost vmap's axis is on the outside
            leaf = jax.lax.index_in_dim(leaf, 0, axis, keepdims=False)
    return leaf


def _is_staged(jx: SimpleNamespace, leaf: Any) -> bool:
    """Whether ``leaf`` has no value yet (a tracer of a region JAX stages to run later)."""
    while isinstance(leaf, jax.core.Tracer):
        if isinstance(leaf, jx.BatchTracer):
            leaf = leaf.val
        elif isinstance(leaf, jx.primal_tracers):
            leaf = leaf.primal
        else:
            return True
    return False


def _custom_call_sources(jx: SimpleNamespace, jaxpr: Any) -> Iterator[str]:
    """``"name at file:line"`` of the primal of each custom-call equation, nested ones too."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _CUSTOM_CALLS:
            info = eqn.params["call_jaxpr"].jaxpr.debug_info
            if info is not None:
                yield info.func_src_info
        for value in eqn.params.values():
            for sub in _jaxprs_in(jx, value):
                yield from _custom_call_sources(jx, sub)


def _jaxprs_in(jx: SimpleNamespace, value: Any) -> Iterator[Any]:
    if isinstance(value, jx.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jx.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _jaxprs_in(jx, item)


# --- sites, and what the two passes record -------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """Where a call sits: its path, and the traces and vmaps it is inside (for nested rules)."""

    path: str
    examples: int  # per-example evaluations one evaluation of this call stands for
    batched: bool  # a vmap is among the traces JAX has open (a staged region will be batched)
    trace_ids: frozenset
    batch_tags: frozenset


@dataclass(frozen=True)
class _Site:
    """One call of a rule as seen by the wrapper: everything a record needs but the values."""

    key: tuple  # (rule, call_site, treedef, per-leaf signature)
    rule: Any
    call_site: str
    treedef: Any
    leaves: tuple  # argument leaves: values where known, ShapeDtypeStruct where traced
    context: _Context


@dataclass
class _Tally:
    """What the evaluation pass saw of one key."""

    site: _Site
    values: list | None = None  # leaves of the first evaluation that delivered values
    count: int = 0  # per-example evaluations
    batched_runs: int = 0  # runs of a staged region under vmap, each for a whole batch


@dataclass
class _Log:
    """What one call of find_rules has seen so far."""

    thread: int = field(default_factory=threading.get_ident)
    evaluating: bool = False
    enclosing: list[_Site] = field(default_factory=list)  # the rule calls now running
    traced: dict[tuple, list[_Site]] = field(default_factory=dict)
    tallies: dict[tuple, _Tally] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # callbacks come from XLA

    def arrive(self, site: _Site, values: list | None, count: int) -> None:
        with self.lock:
            tally = self.tallies.setdefault(site.key, _Tally(site))
            tally.count += count
            if tally.values is None:
                tally.values = values

    def arrive_batched(self, site: _Site) -> None:
        with self.lock:
            self.tallies.setdefault(site.key, _Tally(site)).batched_runs += 1


_LOCK = threading.Lock()
_ACTIVE: _Log | None = None  # the find_rules in progress; callbacks report to it


@contextmanager
def _intercepting(log: _Log) -> Iterator[None]:
    """Wrap the rules' ``__call__`` for the duration, reporting to ``log``."""
    global _ACTIVE
    if _ACTIVE is not None and _ACTIVE.thread == log.thread:
        raise RuntimeError("find_rules cannot run inside a function that find_rules runs")
    with _LOCK:
        originals = {cls: cls.__call__ for cls in (jax.custom_vjp, jax.custom_jvp)}
        for cls, call in originals.items():
            cls.__call__ = _wrapped(call)
        _ACTIVE = log
        try:
            yield
        finally:
            _ACTIVE = None
            for cls, call in originals.items():
                cls.__call__ = call


def _wrapped(call: Callable) -> Callable:
    @functools.wraps(call)
    def intercepted(rule: Any, *args: Any, **kwargs: Any) -> Any:
        log = _ACTIVE
        if (
            log is None
            or log.thread != threading.get_ident()
            or any(site.rule is rule for site in log.enclosing)  # its own fwd/jvp calls it
        ):
            return call(rule, *args, **kwargs)
        jx = _load_internals()
        try:
            positional = tuple(jx.resolve_kwargs(rule.fun, args, kwargs))
        except TypeError:  # JAX raises its own error for it
            return call(rule, *args, **kwargs)
        site = _see(jx, log, rule, positional)
        log.enclosing.append(site)
        try:
            return call(rule, *args, **kwargs)
        finally:
            log.enclosing.pop()

    return intercepted


def _see(jx: SimpleNamespace, log: _Log, rule: Any, args: tuple) -> _Site:
    """Record one call of ``rule``: a site when tracing; its values when evaluating."""
    leaves, treedef = jax.tree.flatten(args)
    nondiff = [
        i in rule.nondiff_argnums for i, arg in enumerate(args) for _ in jax.tree.leaves(arg)
    ]
    signature = tuple(map(_signature, leaves, nondiff))
    call_site = _calling_line()
    site = _Site(
        key=(rule, call_site, treedef, signature),
        rule=rule,
        call_site=call_site,
        treedef=treedef,
        leaves=tuple(_placeholder(leaf) for leaf in leaves),
        context=_context(jx, log),
    )
    if not log.evaluating:
        log.traced.setdefault(site.key, []).append(site)
        return site
    staged = [i for i, leaf in enumerate(leaves) if _is_staged(jx, leaf)]
    if not staged:
        known = log.tallies.get(site.key)
        first = known is None or known.values is None
        values = [_one_example(jx, leaf) for leaf in leaves] if first else None
        log.arrive(site, values, site.context.examples)
    elif site.context.batched:  # values would cost one unrolled callback per example
        jax.debug.callback(functools.partial(_arrive_later, site, None))
    else:
        delivered = [leaves[i] for i in staged]
        jax.debug.callback(functools.partial(_arrive_later, site, tuple(staged)), *delivered)
    return site


def _arrive_later(site: _Site, positions: tuple | None, *arrays: Any) -> None:
    """A staged region ran the call: report it, with the values at ``positions`` of its
    leaves, or (``positions`` None) as one run for a whole vmapped batch.

    Lives at module level and reads ``_ACTIVE``, so that a staged region JAX cached in an
    earlier call of find_rules reports to the current one (whose trace pass knows the batch
    size of today's call: the cached site may carry another).
    """
    log = _ACTIVE
    if log is None:
        return
    if positions is None:
        log.arrive_batched(site)
        return
    values = list(site.leaves)
    for position, array in zip(positions, arrays, strict=True):
        values[position] = np.array(array)
    log.arrive(site, values, 1)


def _context(jx: SimpleNamespace, log: _Log) -> _Context:
    """The path of the current call and what it is inside, from JAX's trace stack.

    A rule called inside another rule's primal is traced apart from the program (its trace
    stack restarts, and JAX enters the enclosing call's vmaps again), so its path and its
    number of examples continue the enclosing call's, and the traces and vmaps of that call
    are not counted twice.
    """
    stack = _trace_stack(jx)
    path, examples, trace_ids, batch_tags = [], 1, frozenset(), frozenset()
    if log.enclosing:
        outer_site = log.enclosing[-1]
        outer = outer_site.context
        path = [outer.path, _source(outer_site.rule.fun)[0].rpartition(".")[2]]
        examples, trace_ids, batch_tags = outer.examples, outer.trace_ids, outer.batch_tags
    for trace in stack:
        if id(trace) in trace_ids or getattr(trace, "tag", None) in batch_tags:
            continue
        if isinstance(trace, jx.BatchTrace):
            examples *= trace.axis_data.size
        info = _staged_info(jx, trace)
        if info is None or (info.traced_for not in _RULE_PRIMAL and info.func_name != _ROOT):
            path.append(_label(jx, trace))
    batches = {trace.tag for trace in stack if isinstance(trace, jx.BatchTrace)}
    return _Context(
        path=" > ".join(segment for segment in path if segment),
        examples=examples,
        batched=bool(batches),
        trace_ids=trace_ids | {id(trace) for trace in stack},
        batch_tags=batch_tags | batches,
    )


def _signature(leaf: Any, nondiff: bool) -> tuple:
    """What tells sites apart: shape and dtype of an array-like leaf, the type of others, and
    the value of a Python scalar or string passed as a nondiff argument (static settings)."""
    value = leaf if nondiff and isinstance(leaf, (bool, int, float, complex, str)) else None
    try:
        aval = jax.typeof(leaf)  # one example's aval under vmap
    except TypeError:
        return ("object", type(leaf).__qualname__, value)
    return ("array", tuple(aval.shape), str(aval.dtype), value)


def _placeholder(leaf: Any) -> Any:
    """A traced leaf as a ShapeDtypeStruct of one example; any other leaf as itself."""
    if not isinstance(leaf, jax.core.Tracer):
        return leaf
    aval = jax.typeof(leaf)
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


_NOT_USER = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (jax, sys.modules["jaxlib"])
)


def _calling_line() -> str:
    """``file:line`` of the innermost frame outside JAX and this module."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename == __file__ or frame.f_code.co_filename.startswith(_NOT_USER)
    ):
        frame = frame.f_back
    return "<unknown>" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _source(fun: Any) -> tuple[str, str]:
    """``(qualified name, "file:line")`` of a rule's primal."""
    while isinstance(fun, functools.partial):
        fun = fun.func
    fun = inspect.unwrap(fun)
    name = getattr(fun, "__qualname__", None) or getattr(fun, "__name__", None) or repr(fun)
    code = getattr(fun, "__code__", None)
    location = "<unknown>" if code is None else f"{code.co_filename}:{code.co_firstlineno}"
    return name, location


# --- the two passes and the records --------------------------------------------------------


def _trace(jx: SimpleNamespace, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Trace ``fn`` under a fresh key, so every body runs its Python again; return the jaxpr."""
    leaves, treedef = jax.tree.flatten((args, kwargs))
    traced = [isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in leaves]

    def program(*arrays: Any) -> list:
        given = iter(arrays)
        full = [
            next(given) if is_traced else leaf
            for leaf, is_traced in zip(leaves, traced, strict=True)
        ]
        call_args, call_kwargs = jax.tree.unflatten(treedef, full)
        out = fn(*call_args, **call_kwargs)
        return [leaf for leaf in jax.tree.leaves(out) if isinstance(leaf, jax.Array)]

    program.__name__ = program.__qualname__ = _ROOT
    with jx.key(next(_trace_keys)):
        return jax.make_jaxpr(program)(*itertools.compress(leaves, traced)).jaxpr


def _require_all_seen(jx: SimpleNamespace, jaxpr: Any, log: _Log) -> None:
    """Raise if the jaxpr holds a custom call whose rule the wrapper did not see."""
    seen = {jx.fun_sourceinfo(rule.fun) for rule, *_ in log.traced}
    unseen = sorted(set(_custom_call_sources(jx, jaxpr)) - seen)
    if unseen:
        raise UnsupportedJaxVersion(
            f"the traced program calls custom rules netcheck did not see called ({unseen}): "
            f"JAX {jax.__version__} calls rules by a route other than jax.custom_vjp.__call__ "
            "/ jax.custom_jvp.__call__, so netcheck cannot find them all"
        )


def _evaluate(
    jx: SimpleNamespace, fn: Callable, args: tuple, kwargs: dict, log: _Log
) -> str | None:
    """Run ``fn`` op by op, recording what each rule call gets; the failure, if it raised."""
    log.evaluating = True
    try:
        with jx.key(_EVALUATE_KEY), jax.disable_jit():
            jax.block_until_ready(fn(*args, **kwargs))
        jax.effects_barrier()
    except Exception as error:  # the trace still names every rule; say why values are missing
        log.tallies.clear()
        return (
            "running the program op by op under jax.disable_jit() to recover the values "
            f"failed ({type(error).__name__}: {error})"
        )
    return None


_NOT_REACHED = (
    "traced but never run at these arguments (in a cond/switch branch not taken, or a loop "
    "that runs zero times)"
)
_STAGED_UNDER_VMAP = (
    "reached under vmap inside a region JAX stages even op by op (remat/checkpoint, or a "
    "cond/while_loop whose predicate vmap batches): one example's values cannot be split off "
    "without unrolling the batch"
)


def _records(log: _Log, failure: str | None) -> list[ReachedRule]:
    keys = list(log.traced) + [key for key in log.tallies if key not in log.traced]
    return [_record(log.traced.get(key, []), log.tallies.get(key), failure) for key in keys]


def _record(traced: list[_Site], tally: _Tally | None, failure: str | None) -> ReachedRule:
    site = traced[0] if traced else tally.site
    paths = dict.fromkeys(s.context.path for s in traced or [tally.site])
    values = None if tally is None else tally.values
    if values is not None:
        why = None
    elif failure is not None:
        why = failure
    elif tally is None:
        why = _NOT_REACHED
    else:
        why = _STAGED_UNDER_VMAP
    name, location = _source(site.rule.fun)
    return ReachedRule(
        rule=site.rule,
        kind="custom_vjp" if isinstance(site.rule, jax.custom_vjp) else "custom_jvp",
        name=name,
        location=location,
        call_site=site.call_site,
        nondiff_argnums=tuple(site.rule.nondiff_argnums),
        args=jax.tree.unflatten(site.treedef, site.leaves if values is None else values),
        values_recovered=values is not None,
        why_not_recovered=why,
        count=0 if tally is None else tally.count + tally.batched_runs * site.context.examples,
        path=" | ".join(paths),
    )
