"""netcheck measuring itself: benchmarks, planted bugs and the suites that count them.

This is the development wing: nothing in ``netcheck.nn``, ``netcheck.verifier`` or
``netcheck.training`` imports it. The report and the command line run it; development-only
packages (Hypothesis) are imported only inside the functions that need them, so the
installed package never needs them.

- ``timing``: interleaved rounds, paired ratios, bootstrap intervals (shared by every bench);
- ``step``: the gradient step, manual beside ``jax.grad`` and the roofline;
- ``verifier_cost``: the verifier's cost in multiples of one float64 gradient;
- ``trainer_speed``: the trainer beside plain JAX loops and a NumPy network;
- ``mutants``, ``suite``: planted bugs in the δ recursion; the suite, kill matrix and
  detection power;
- ``rule_mutants``, ``custom_rules``: planted bugs in custom rules, and their measurement.
"""
