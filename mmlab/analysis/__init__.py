"""Statistics on a sweep's ``res.df`` (or any frame with the same columns), one question a file.

Every function first drops failed calls (rows whose ``error`` is set), and every interval it
returns names its method: a ``ci_method`` column (or key) says how it was made — Student t,
Wilson score, or a bootstrap with its unit, resample count and seed — so a number can be
reproduced and read for what it is. Each file cites the estimators it uses.

    at_k.py       how often k samples get a problem right: pass@k (Chen et al. 2021),
                  maj@k / cons@k (self-consistency), short-m@k (Hassid et al. 2025) and
                  conf@k (DeepConf), with clustered intervals over problems
    summary.py    what each group looks like: `summarize` (mean, std, n, t interval per
                  metric), `truncation_rate`, `reasoning_share`, `compare_providers`
    cost.py       what accuracy costs: `cost_per_correct`, `pareto_frontier`,
                  `accuracy_vs_reasoning` (accuracy against reasoning tokens spent)
    knobs.py      whether the output moves with a parameter: `knob_effect`
    intervals.py  how intervals are made: `t95`, `wilson`, the clustered bootstrap, and the
                  method texts they put in ``ci_method``
    frames.py     the frame helpers every analysis shares: failed calls dropped, columns and
                  arguments checked, rows grouped
"""

from __future__ import annotations

from .at_k import (
    AT_K_COLUMNS,
    CONF_SCORES,
    TIE_RULES,
    conf_at_k,
    cons_at_k,
    maj_at_k,
    pass_at_k,
    short_m_at_k,
)
from .compare import compare
from .cost import accuracy_vs_reasoning, cost_per_correct, pareto_frontier
from .intervals import WILSON_CI, t95, wilson
from .knobs import KNOB_CI, knob_effect
from .summary import (
    DEFAULT_METRICS,
    PROVIDER_METRICS,
    SHARES,
    SUMMARIZE_CI,
    SUMMARIZE_CLUSTERED_CI,
    compare_providers,
    reasoning_share,
    summarize,
    truncation_rate,
)

__all__ = [
    "AT_K_COLUMNS",
    "CONF_SCORES",
    "DEFAULT_METRICS",
    "KNOB_CI",
    "PROVIDER_METRICS",
    "SHARES",
    "SUMMARIZE_CI",
    "SUMMARIZE_CLUSTERED_CI",
    "TIE_RULES",
    "WILSON_CI",
    "accuracy_vs_reasoning",
    "compare",
    "compare_providers",
    "conf_at_k",
    "cons_at_k",
    "cost_per_correct",
    "knob_effect",
    "maj_at_k",
    "pareto_frontier",
    "pass_at_k",
    "reasoning_share",
    "short_m_at_k",
    "summarize",
    "t95",
    "truncation_rate",
    "wilson",
]
